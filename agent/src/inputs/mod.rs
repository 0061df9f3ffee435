//! What the agent reads from outside and turns into the configuration's raw material:
//! sanctions lists ([`lists`]), indicator data ([`import`]: STIX 2.1, IOC text, CSV), range
//! tables ([`ranges`]: IP-to-ASN, IP-to-country) and remote sources ([`sources`]: HTTPS feeds
//! fetched, verified, parsed, cached and refreshed).

pub mod import;
pub mod lists;
pub mod ranges;
pub mod sources;
