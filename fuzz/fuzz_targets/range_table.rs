//! An IP-to-ASN or IP-to-country range table (`ranges::RangeFile::parse`; the first byte picks
//! which): every key's CIDRs are networks, in order and apart (minimal), and a refusal names a
//! line of the file.
#![no_main]

use std::path::Path;

use embargo::{
    policy::cidr,
    config::ConfigError,
    inputs::ranges::{self, RangeFile},
};
use ipnetwork::IpNetwork;
use libfuzzer_sys::fuzz_target;

fn check<K>(parsed: Result<RangeFile<K>, ConfigError>, text: &str)
where
    K: Eq + std::hash::Hash,
{
    match parsed {
        Ok(file) => {
            for (_, nets) in file.iter() {
                for n in nets {
                    embargo_fuzz::check_net("a range table CIDR", n);
                }
                let mut sorted: Vec<IpNetwork> = nets.to_vec();
                sorted.sort_by_key(embargo::policy::compile::sort_key);
                for w in sorted.windows(2) {
                    assert!(
                        !cidr::overlaps(&w[0], &w[1]),
                        "{} and {} overlap",
                        w[0],
                        w[1]
                    );
                }
            }
        }
        Err(e) => {
            if let ConfigError::Invalid { at, .. } = &e {
                embargo_fuzz::check_line(&e.to_string(), at.line, text);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let path = Path::new("fuzz.csv");
    if which % 2 == 0 {
        check(
            RangeFile::parse(path, text, "v".into(), ranges::asn_key),
            text,
        );
    } else {
        check(
            RangeFile::parse(path, text, "v".into(), ranges::country_key),
            text,
        );
    }
});
