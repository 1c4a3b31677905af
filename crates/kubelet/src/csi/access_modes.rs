//! A volume's access mode as the CSI request states it (upstream's asCSIAccessModeV1 and, for a
//! driver with the SINGLE_NODE_MULTI_WRITER node capability,
//! asSingleNodeMultiWriterCapableCSIAccessModeV1).

use kubelet_plugin_apis::csi::v1::volume_capability::access_mode::Mode;

/// `mode`: the PV's first access mode (ReadWriteOnce for an inline volume).
pub(super) fn csi_access_mode(mode: Option<&str>, single_node_multi_writer: bool) -> Mode {
    match mode {
        Some("ReadWriteOnce") if single_node_multi_writer => Mode::SingleNodeMultiWriter,
        Some("ReadWriteOncePod") if single_node_multi_writer => Mode::SingleNodeSingleWriter,
        // A driver without the capability knows only SINGLE_NODE_WRITER for both.
        Some("ReadWriteOnce" | "ReadWriteOncePod") => Mode::SingleNodeWriter,
        Some("ReadOnlyMany") => Mode::MultiNodeReaderOnly,
        Some("ReadWriteMany") => Mode::MultiNodeMultiWriter,
        _ => Mode::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_as_upstreams() {
        let cases = [
            (
                "ReadWriteOnce",
                Mode::SingleNodeWriter,
                Mode::SingleNodeMultiWriter,
            ),
            (
                "ReadWriteOncePod",
                Mode::SingleNodeWriter,
                Mode::SingleNodeSingleWriter,
            ),
            (
                "ReadOnlyMany",
                Mode::MultiNodeReaderOnly,
                Mode::MultiNodeReaderOnly,
            ),
            (
                "ReadWriteMany",
                Mode::MultiNodeMultiWriter,
                Mode::MultiNodeMultiWriter,
            ),
            ("Bogus", Mode::Unknown, Mode::Unknown),
        ];
        for (mode, without, with) in cases {
            assert_eq!(csi_access_mode(Some(mode), false), without, "{mode}");
            assert_eq!(csi_access_mode(Some(mode), true), with, "{mode}");
        }
        assert_eq!(csi_access_mode(None, true), Mode::Unknown);
    }
}
