//! Parses arbitrary text as label and field selectors; whatever parses must print and parse
//! back to the same selector.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_api::selector::{FieldSelector, LabelSelector};

fuzz_target!(|text: &str| {
    if let Ok(selector) = LabelSelector::parse(text) {
        assert_eq!(
            LabelSelector::parse(&selector.to_string()).ok(),
            Some(selector)
        );
    }
    if let Ok(selector) = FieldSelector::parse(text) {
        assert_eq!(
            FieldSelector::parse(&selector.to_string()).ok(),
            Some(selector)
        );
    }
});
