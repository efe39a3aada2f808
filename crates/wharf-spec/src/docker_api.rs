//! The fields of the Docker Engine API objects that a step's `container`, `host` and
//! `network` maps pass through (API 1.41: container Config, HostConfig, NetworkingConfig).
//!
//! Keys are matched without regard to case or underscores, so `memory`, `Memory` and
//! `port_bindings`/`portBindings`/`PortBindings` all name one field, and are written back in
//! the API's own casing. Keys inside maps the user owns (labels, sysctls, port specs,
//! network names) are data and are never renamed.

#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub shape: Shape,
}

#[derive(Debug)]
pub(crate) enum Shape {
    Str,
    Int,
    Bool,
    StrList,
    /// A map of strings to strings (labels, options).
    StrMap,
    /// A set (`{"80/tcp": {}}`); a list of strings is accepted and turned into one.
    Set,
    Struct(&'static [Field]),
    MapOf(&'static Shape),
    ListOf(&'static Shape),
}

const fn f(name: &'static str, shape: Shape) -> Field {
    Field { name, shape }
}

use Shape::{Bool, Int, ListOf, MapOf, Set, Str, StrList, StrMap, Struct};

const HEALTHCHECK: &[Field] = &[
    f("Test", StrList),
    f("Interval", Int),
    f("Timeout", Int),
    f("Retries", Int),
    f("StartPeriod", Int),
];

pub(crate) const CONFIG: &[Field] = &[
    f("Hostname", Str),
    f("Domainname", Str),
    f("User", Str),
    f("AttachStdin", Bool),
    f("AttachStdout", Bool),
    f("AttachStderr", Bool),
    f("ExposedPorts", Set),
    f("Tty", Bool),
    f("OpenStdin", Bool),
    f("StdinOnce", Bool),
    f("Env", StrList),
    f("Cmd", StrList),
    f("Healthcheck", Struct(HEALTHCHECK)),
    f("ArgsEscaped", Bool),
    f("Image", Str),
    f("Volumes", Set),
    f("WorkingDir", Str),
    f("Entrypoint", StrList),
    f("NetworkDisabled", Bool),
    f("MacAddress", Str),
    f("OnBuild", StrList),
    f("Labels", StrMap),
    f("StopSignal", Str),
    f("StopTimeout", Int),
    f("Shell", StrList),
];

const LOG_CONFIG: &[Field] = &[f("Type", Str), f("Config", StrMap)];
const PORT_BINDING: &[Field] = &[f("HostIp", Str), f("HostPort", Str)];
const RESTART_POLICY: &[Field] = &[f("Name", Str), f("MaximumRetryCount", Int)];
const WEIGHT_DEVICE: &[Field] = &[f("Path", Str), f("Weight", Int)];
const THROTTLE_DEVICE: &[Field] = &[f("Path", Str), f("Rate", Int)];
const DEVICE: &[Field] = &[
    f("PathOnHost", Str),
    f("PathInContainer", Str),
    f("CgroupPermissions", Str),
];
const DEVICE_REQUEST: &[Field] = &[
    f("Driver", Str),
    f("Count", Int),
    f("DeviceIDs", StrList),
    f("Capabilities", ListOf(&StrList)),
    f("Options", StrMap),
];
const ULIMIT: &[Field] = &[f("Name", Str), f("Soft", Int), f("Hard", Int)];
const BIND_OPTIONS: &[Field] = &[f("Propagation", Str), f("NonRecursive", Bool)];
const DRIVER_CONFIG: &[Field] = &[f("Name", Str), f("Options", StrMap)];
const VOLUME_OPTIONS: &[Field] = &[
    f("NoCopy", Bool),
    f("Labels", StrMap),
    f("DriverConfig", Struct(DRIVER_CONFIG)),
];
const TMPFS_OPTIONS: &[Field] = &[f("SizeBytes", Int), f("Mode", Int)];
const MOUNT: &[Field] = &[
    f("Target", Str),
    f("Source", Str),
    f("Type", Str),
    f("ReadOnly", Bool),
    f("Consistency", Str),
    f("BindOptions", Struct(BIND_OPTIONS)),
    f("VolumeOptions", Struct(VOLUME_OPTIONS)),
    f("TmpfsOptions", Struct(TMPFS_OPTIONS)),
];

pub(crate) const HOST_CONFIG: &[Field] = &[
    // Resources.
    f("CpuShares", Int),
    f("Memory", Int),
    f("CgroupParent", Str),
    f("BlkioWeight", Int),
    f("BlkioWeightDevice", ListOf(&Struct(WEIGHT_DEVICE))),
    f("BlkioDeviceReadBps", ListOf(&Struct(THROTTLE_DEVICE))),
    f("BlkioDeviceWriteBps", ListOf(&Struct(THROTTLE_DEVICE))),
    f("BlkioDeviceReadIOps", ListOf(&Struct(THROTTLE_DEVICE))),
    f("BlkioDeviceWriteIOps", ListOf(&Struct(THROTTLE_DEVICE))),
    f("CpuPeriod", Int),
    f("CpuQuota", Int),
    f("CpuRealtimePeriod", Int),
    f("CpuRealtimeRuntime", Int),
    f("CpusetCpus", Str),
    f("CpusetMems", Str),
    f("Devices", ListOf(&Struct(DEVICE))),
    f("DeviceCgroupRules", StrList),
    f("DeviceRequests", ListOf(&Struct(DEVICE_REQUEST))),
    f("KernelMemory", Int),
    f("KernelMemoryTCP", Int),
    f("MemoryReservation", Int),
    f("MemorySwap", Int),
    f("MemorySwappiness", Int),
    f("NanoCpus", Int),
    f("OomKillDisable", Bool),
    f("Init", Bool),
    f("PidsLimit", Int),
    f("Ulimits", ListOf(&Struct(ULIMIT))),
    f("CpuCount", Int),
    f("CpuPercent", Int),
    f("IOMaximumIOps", Int),
    f("IOMaximumBandwidth", Int),
    // The rest of HostConfig.
    f("Binds", StrList),
    f("ContainerIDFile", Str),
    f("LogConfig", Struct(LOG_CONFIG)),
    f("NetworkMode", Str),
    f("PortBindings", MapOf(&ListOf(&Struct(PORT_BINDING)))),
    f("RestartPolicy", Struct(RESTART_POLICY)),
    f("AutoRemove", Bool),
    f("VolumeDriver", Str),
    f("VolumesFrom", StrList),
    f("Mounts", ListOf(&Struct(MOUNT))),
    f("CapAdd", StrList),
    f("CapDrop", StrList),
    f("CgroupnsMode", Str),
    f("Dns", StrList),
    f("DnsOptions", StrList),
    f("DnsSearch", StrList),
    f("ExtraHosts", StrList),
    f("GroupAdd", StrList),
    f("IpcMode", Str),
    f("Cgroup", Str),
    f("Links", StrList),
    f("OomScoreAdj", Int),
    f("PidMode", Str),
    f("Privileged", Bool),
    f("PublishAllPorts", Bool),
    f("ReadonlyRootfs", Bool),
    f("SecurityOpt", StrList),
    f("StorageOpt", StrMap),
    f("Tmpfs", StrMap),
    f("UTSMode", Str),
    f("UsernsMode", Str),
    f("ShmSize", Int),
    f("Sysctls", StrMap),
    f("Runtime", Str),
    f("ConsoleSize", ListOf(&Int)),
    f("Isolation", Str),
    f("MaskedPaths", StrList),
    f("ReadonlyPaths", StrList),
];

const IPAM_CONFIG: &[Field] = &[
    f("IPv4Address", Str),
    f("IPv6Address", Str),
    f("LinkLocalIPs", StrList),
];
const ENDPOINT_SETTINGS: &[Field] = &[
    f("IPAMConfig", Struct(IPAM_CONFIG)),
    f("Links", StrList),
    f("Aliases", StrList),
    f("NetworkID", Str),
    f("EndpointID", Str),
    f("Gateway", Str),
    f("IPAddress", Str),
    f("IPPrefixLen", Int),
    f("IPv6Gateway", Str),
    f("GlobalIPv6Address", Str),
    f("GlobalIPv6PrefixLen", Int),
    f("MacAddress", Str),
    f("DriverOpts", StrMap),
];

pub(crate) const NETWORKING_CONFIG: &[Field] =
    &[f("EndpointsConfig", MapOf(&Struct(ENDPOINT_SETTINGS)))];

/// `key` folded for matching: lower case, no underscores or dashes.
pub(crate) fn fold(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

pub(crate) fn find<'a>(fields: &'a [Field], key: &str) -> Option<&'a Field> {
    let folded = fold(key);
    fields.iter().find(|field| fold(field.name) == folded)
}

/// The camelCase spelling of an API field name, as suggested to users.
pub(crate) fn camel(name: &str) -> String {
    // Leading upper-case runs are lowered as a whole (`IOMaximumIOps` → `ioMaximumIOps`).
    let upper = name.chars().take_while(char::is_ascii_uppercase).count();
    let keep = if upper > 1 && upper < name.len() {
        upper - 1
    } else {
        upper.max(1)
    };
    let mut out: String = name[..keep].to_ascii_lowercase();
    out.push_str(&name[keep..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_in_any_casing() {
        assert_eq!(find(HOST_CONFIG, "memory").map(|f| f.name), Some("Memory"));
        assert_eq!(
            find(HOST_CONFIG, "port_bindings").map(|f| f.name),
            Some("PortBindings")
        );
        assert_eq!(
            find(CONFIG, "workingDir").map(|f| f.name),
            Some("WorkingDir")
        );
        assert!(find(HOST_CONFIG, "memroy").is_none());
    }

    #[test]
    fn camel_case_of_api_names() {
        assert_eq!(camel("PortBindings"), "portBindings");
        assert_eq!(camel("IOMaximumIOps"), "ioMaximumIOps");
        assert_eq!(camel("UTSMode"), "utsMode");
    }
}
