//! Upstream's node plugin APIs (k8s.io/kubelet/pkg/apis), generated at build time; wire-compatible
//! with existing device plugins, plugin registrars and pod-resources clients.

pub mod unix;

/// Device plugins (deviceplugin/v1beta1): the kubelet's Registration service and the plugin's
/// DevicePlugin service.
pub mod deviceplugin {
    pub mod v1beta1 {
        tonic::include_proto!("v1beta1");
    }
}

/// Plugin registration through the plugins_registry directory (pluginregistration/v1; the proto
/// package is `pluginregistration`).
pub mod pluginregistration {
    pub mod v1 {
        tonic::include_proto!("pluginregistration");
    }
}

/// The pod-resources API the kubelet serves.
pub mod podresources {
    pub mod v1 {
        tonic::include_proto!("v1");
    }
    pub mod v1alpha1 {
        tonic::include_proto!("v1alpha1");
    }
}

/// The Container Storage Interface v1 (csi.proto of the CSI spec): the driver's Identity, Node
/// and Controller services. The kubelet is a client of Identity and Node.
pub mod csi {
    pub mod v1 {
        tonic::include_proto!("csi.v1");
    }
}
