//! Return codes: the one table of classic names and values, and the mapping from the
//! library's errors (through their `code_name`, so the classification lives in `rvm` alone).

use std::ffi::CStr;

use crate::types::RvmReturn;

pub const RVM_SUCCESS: RvmReturn = 0;
pub const RVM_EINIT: RvmReturn = 200;
pub const RVM_EINTERNAL: RvmReturn = 201;
pub const RVM_EIO: RvmReturn = 202;
pub const RVM_ELOG: RvmReturn = 204;
pub const RVM_EMODE: RvmReturn = 206;
pub const RVM_ENAME_TOO_LONG: RvmReturn = 207;
pub const RVM_ENO_MEMORY: RvmReturn = 208;
pub const RVM_ENOT_MAPPED: RvmReturn = 209;
pub const RVM_EOFFSET: RvmReturn = 210;
pub const RVM_EOPTIONS: RvmReturn = 211;
pub const RVM_EOVERLAP: RvmReturn = 212;
pub const RVM_EPAGER: RvmReturn = 213;
pub const RVM_ERANGE: RvmReturn = 214;
pub const RVM_EREGION: RvmReturn = 215;
pub const RVM_EREGION_DEF: RvmReturn = 216;
pub const RVM_ESRC: RvmReturn = 217;
pub const RVM_ESTATISTICS: RvmReturn = 218;
pub const RVM_ESTAT_VERSION_SKEW: RvmReturn = 219;
pub const RVM_ETID: RvmReturn = 222;
pub const RVM_ETOO_BIG: RvmReturn = 223;
pub const RVM_EUNCOMMIT: RvmReturn = 224;
pub const RVM_EVERSION_SKEW: RvmReturn = 225;
pub const RVM_EVM_OVERLAP: RvmReturn = 226;

pub const RDS_SUCCESS: i32 = 0;
pub const EBAD_LIST: i32 = -2;
pub const EBAD_SEGMENT_HDR: i32 = -3;
pub const EHEAP_INIT: i32 = -5;
pub const EBAD_ARGS: i32 = -6;
pub const EFREED_TWICE: i32 = -8;

/// Every classic code: RVM return codes (positive), the segment loader's, and RDS's
/// (negative). `rvm_return` prints from it and errors are mapped through it by name.
const CODES: &[(&CStr, i32)] = &[
    (c"RVM_SUCCESS", 0),
    (c"RVM_EINIT", 200),
    (c"RVM_EINTERNAL", 201),
    (c"RVM_EIO", 202),
    (c"RVM_EPLACEHOLDER", 203),
    (c"RVM_ELOG", 204),
    (c"RVM_ELOG_VERSION_SKEW", 205),
    (c"RVM_EMODE", 206),
    (c"RVM_ENAME_TOO_LONG", 207),
    (c"RVM_ENO_MEMORY", 208),
    (c"RVM_ENOT_MAPPED", 209),
    (c"RVM_EOFFSET", 210),
    (c"RVM_EOPTIONS", 211),
    (c"RVM_EOVERLAP", 212),
    (c"RVM_EPAGER", 213),
    (c"RVM_ERANGE", 214),
    (c"RVM_EREGION", 215),
    (c"RVM_EREGION_DEF", 216),
    (c"RVM_ESRC", 217),
    (c"RVM_ESTATISTICS", 218),
    (c"RVM_ESTAT_VERSION_SKEW", 219),
    (c"RVM_ETERMINATED", 220),
    (c"RVM_ETHREADS", 221),
    (c"RVM_ETID", 222),
    (c"RVM_ETOO_BIG", 223),
    (c"RVM_EUNCOMMIT", 224),
    (c"RVM_EVERSION_SKEW", 225),
    (c"RVM_EVM_OVERLAP", 226),
    (c"RVM_ESEGMENT_HDR", 2000),
    (c"ERVM_FAILED", -1),
    (c"EBAD_LIST", -2),
    (c"EBAD_SEGMENT_HDR", -3),
    (c"EHEAP_VERSION_SKEW", -4),
    (c"EHEAP_INIT", -5),
    (c"EBAD_ARGS", -6),
    (c"ECORRUPT", -7),
    (c"EFREED_TWICE", -8),
    (c"ENO_ROOM", -9),
];

fn by_name(name: &str) -> i32 {
    CODES
        .iter()
        .find(|(n, _)| n.to_bytes() == name.as_bytes())
        .map(|&(_, v)| v)
        // A name the table lacks is a bug in this table, not in the caller's input.
        .unwrap_or(RVM_EINTERNAL)
}

/// The classic RVM code of a library error.
pub fn rvm_code(e: &rvm::Error) -> RvmReturn {
    by_name(e.code_name())
}

/// The classic RDS code of a heap error (an RVM error keeps its positive RVM code).
pub fn rds_code(e: &rvm::rds::Error) -> i32 {
    by_name(e.code_name())
}

/// The printable name of an RVM return code (`rvm_return`); RDS codes are not RVM codes.
pub fn rvm_name(code: RvmReturn) -> &'static CStr {
    CODES
        .iter()
        .find(|&&(_, v)| v == code && v >= 0)
        .map(|&(n, _)| n)
        .unwrap_or(c"Invalid RVM return code")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_code_name_is_in_the_table() {
        let samples = [
            rvm::Error::TooBig { size: 1, max: 0 },
            rvm::Error::NotMapped {
                address: 0,
                length: 1,
            },
            rvm::Error::Uncommitted {
                what: "x".into(),
                count: 1,
            },
            rvm::Error::AddressInUse {
                path: "p".into(),
                start: 0,
                end: 1,
                occupant: "o".into(),
            },
        ];
        let expected = [
            RVM_ETOO_BIG,
            RVM_ENOT_MAPPED,
            RVM_EUNCOMMIT,
            RVM_EVM_OVERLAP,
        ];
        for (e, want) in samples.iter().zip(expected) {
            assert_eq!(rvm_code(e), want, "{e}");
        }
        let e = rvm::rds::Error::DoubleFree { address: 8 };
        assert_eq!(rds_code(&e), EFREED_TWICE);
        assert_eq!(rvm_name(203).to_bytes(), b"RVM_EPLACEHOLDER");
        assert_eq!(rvm_name(-6).to_bytes(), b"Invalid RVM return code");
        assert_eq!(rvm_name(2000).to_bytes(), b"RVM_ESEGMENT_HDR");
    }
}
