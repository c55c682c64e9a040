//! Fuzz target: the input bytes are an orders CSV file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orderbatch::model::InputFormat;

fuzz_target!(|data: &[u8]| {
    orderbatch_fuzz::check_input(data, InputFormat::Csv);
});
