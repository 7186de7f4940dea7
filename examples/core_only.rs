//! Using only `cartloop-core` in an app of your own: validate an operator's template,
//! render it for a client, and find when it may be sent — no database, no HTTP, no runtime.
//!
//! ```sh
//! cargo run --example core_only
//! ```

use cartloop::core::active_hours::ActiveHours;
use cartloop::core::template::RenderValues;
use cartloop::core::validate::{Payload, ValidationPolicy};
use chrono::{TimeZone, Utc};

fn main() {
    let policy = ValidationPolicy::default();

    // A valid template, rendered for one client.
    let payload = Payload::parse(
        "Sure << username >>, here is your code << discountCode >>",
        &policy,
    )
    .expect("a valid template");
    let values = RenderValues {
        username: "Ann",
        discount_code: Some("PROMO50"),
        operator: "Dan",
    };
    let text = payload.render_checked(&values, &policy).expect("renders");
    println!("rendered: {text}");
    assert_eq!(text, "Sure Ann, here is your code PROMO50");

    // Invalid ones say what and where.
    for raw in ["Merci, café?", "Hi << name >>", "code {{ discountCode"] {
        let error = Payload::parse(raw, &policy).unwrap_err();
        println!("{raw:?}: {} ({})", error, error.code());
    }

    // When may it go? 07:00 in New York on a weekday: at 09:00 local.
    let hours = ActiveHours::default();
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    for zone in [
        chrono_tz::America::New_York,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Australia::Lord_Howe,
    ] {
        let at = hours.next_send_instant(now, zone);
        println!(
            "{zone}: send at {} ({} local)",
            at.to_rfc3339(),
            at.with_timezone(&zone).format("%H:%M")
        );
    }
    assert_eq!(
        hours.next_send_instant(now, chrono_tz::America::New_York),
        Utc.with_ymd_and_hms(2026, 11, 25, 14, 0, 0).unwrap()
    );

    // An overnight window: 21:00-08:00.
    let night: ActiveHours = "21:00-08:00".parse().expect("a valid window");
    println!(
        "night window from 12:00Z in Berlin: {}",
        night.next_send_instant(now, chrono_tz::Europe::Berlin)
    );
}
