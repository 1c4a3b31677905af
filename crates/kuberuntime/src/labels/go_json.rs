//! JSON written the way Go's `encoding/json` writes it: struct fields in declaration order,
//! `omitempty` honoured, and `<`, `>`, `&`, U+2028 and U+2029 escaped. The annotation values
//! and the container hash are read by tools and compared across kubelets, so byte equality
//! with the Go kubelet matters here; serde would sort the fields and skip the HTML escaping.

use k8s_openapi::api::core::v1::{ContainerPort, LifecycleHandler};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::fmt::Write;

/// Appends `s` as a JSON string literal, escaped like Go's `json.Marshal`.
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes the members of one JSON object, inserting commas.
struct Object<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut String) -> Self {
        out.push('{');
        Object { out, first: true }
    }

    fn key(&mut self, name: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_string(self.out, name);
        self.out.push(':');
        self.out
    }

    fn string(&mut self, name: &str, value: &str) {
        write_string(self.key(name), value);
    }

    fn string_omitempty(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.string(name, v);
        }
    }

    fn int(&mut self, name: &str, value: i64) {
        let _ = write!(self.key(name), "{value}");
    }

    fn int_or_string(&mut self, name: &str, value: &IntOrString) {
        match value {
            IntOrString::Int(i) => self.int(name, i64::from(*i)),
            IntOrString::String(s) => self.string(name, s),
        }
    }

    fn close(self) {
        self.out.push('}');
    }
}

/// `json.Marshal([]v1.ContainerPort)`.
pub(crate) fn container_ports(ports: &[ContainerPort]) -> String {
    let mut out = String::from("[");
    for (i, p) in ports.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut o = Object::open(&mut out);
        o.string_omitempty("name", p.name.as_deref());
        if let Some(hp) = p.host_port.filter(|hp| *hp != 0) {
            o.int("hostPort", i64::from(hp));
        }
        o.int("containerPort", i64::from(p.container_port));
        o.string_omitempty("protocol", p.protocol.as_deref());
        o.string_omitempty("hostIP", p.host_ip.as_deref());
        o.close();
    }
    out.push(']');
    out
}

/// `json.Marshal(*v1.LifecycleHandler)`.
pub(crate) fn lifecycle_handler(h: &LifecycleHandler) -> String {
    let mut out = String::new();
    let mut o = Object::open(&mut out);
    if let Some(exec) = &h.exec {
        let mut e = Object::open(o.key("exec"));
        if let Some(cmd) = exec.command.as_ref().filter(|c| !c.is_empty()) {
            string_array(e.key("command"), cmd);
        }
        e.close();
    }
    if let Some(get) = &h.http_get {
        let mut g = Object::open(o.key("httpGet"));
        g.string_omitempty("path", get.path.as_deref());
        g.int_or_string("port", &get.port);
        g.string_omitempty("host", get.host.as_deref());
        g.string_omitempty("scheme", get.scheme.as_deref());
        if let Some(headers) = get.http_headers.as_ref().filter(|h| !h.is_empty()) {
            let out = g.key("httpHeaders");
            out.push('[');
            for (i, header) in headers.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let mut ho = Object::open(out);
                ho.string("name", &header.name);
                ho.string("value", &header.value);
                ho.close();
            }
            out.push(']');
        }
        g.close();
    }
    if let Some(tcp) = &h.tcp_socket {
        let mut t = Object::open(o.key("tcpSocket"));
        t.int_or_string("port", &tcp.port);
        t.string_omitempty("host", tcp.host.as_deref());
        t.close();
    }
    if let Some(sleep) = &h.sleep {
        let mut s = Object::open(o.key("sleep"));
        s.int("seconds", sleep.seconds);
        s.close();
    }
    o.close();
    out
}

fn string_array(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, item);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, HTTPHeader};

    fn string(s: &str) -> String {
        let mut out = String::new();
        write_string(&mut out, s);
        out
    }

    #[test]
    fn strings_escape_like_go() {
        assert_eq!(string("a<b>&c"), r#""a\u003cb\u003e\u0026c""#);
        assert_eq!(
            string("q\"\\\n\t\u{1}\u{2028}"),
            r#""q\"\\\n\t\u0001\u2028""#
        );
        assert_eq!(string("héllo"), "\"héllo\"");
    }

    #[test]
    fn ports_in_go_field_order() {
        let ports = vec![
            ContainerPort {
                name: Some("http".into()),
                host_port: Some(8080),
                container_port: 80,
                protocol: Some("TCP".into()),
                host_ip: Some("127.0.0.1".into()),
            },
            ContainerPort {
                container_port: 53,
                protocol: Some("UDP".into()),
                ..Default::default()
            },
        ];
        assert_eq!(
            container_ports(&ports),
            r#"[{"name":"http","hostPort":8080,"containerPort":80,"protocol":"TCP","hostIP":"127.0.0.1"},{"containerPort":53,"protocol":"UDP"}]"#
        );
    }

    #[test]
    fn handler_in_go_field_order() {
        let exec = LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["sh".into(), "-c".into(), "sleep 1".into()]),
            }),
            ..Default::default()
        };
        assert_eq!(
            lifecycle_handler(&exec),
            r#"{"exec":{"command":["sh","-c","sleep 1"]}}"#
        );
        let get = LifecycleHandler {
            http_get: Some(HTTPGetAction {
                path: Some("/stop".into()),
                port: IntOrString::String("http".into()),
                scheme: Some("HTTP".into()),
                http_headers: Some(vec![HTTPHeader {
                    name: "X".into(),
                    value: "1".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            lifecycle_handler(&get),
            r#"{"httpGet":{"path":"/stop","port":"http","scheme":"HTTP","httpHeaders":[{"name":"X","value":"1"}]}}"#
        );
    }
}
