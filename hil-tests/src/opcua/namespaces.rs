//! The namespaces the simulator registers: the companion specifications' URIs and its own
//! instance namespace, in an order chosen on the command line. A client that hard-codes
//! namespace indexes (`ns=4;...`) works against one order and breaks against the other; a client
//! that resolves indexes from the server's NamespaceArray by URI works against both.

use opcua::nodes::{ImportedItem, NodeSetImport, NodeSetNamespaceMapper};

pub const DI_URI: &str = "http://opcfoundation.org/UA/DI/";
pub const MACHINERY_URI: &str = "http://opcfoundation.org/UA/Machinery/";
pub const IA_URI: &str = "http://opcfoundation.org/UA/IA/";
pub const MACHINE_TOOL_URI: &str = "http://opcfoundation.org/UA/MachineTool/";
/// The simulator's own namespace: machine instances, vendor-specific nodes and methods.
pub const INSTANCE_URI: &str = "urn:microfab:sim:opcua";

/// In which order the namespaces follow the server's own (index 1) in the NamespaceArray.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NamespaceOrder {
    /// DI, Machinery, IA, MachineTool, then the instance namespace (as a nodeset import would).
    #[default]
    Companion,
    /// The instance namespace first, then the companions backwards.
    Reversed,
}

impl NamespaceOrder {
    pub fn uris(self) -> [&'static str; 5] {
        let companion = [
            DI_URI,
            MACHINERY_URI,
            IA_URI,
            MACHINE_TOOL_URI,
            INSTANCE_URI,
        ];
        match self {
            NamespaceOrder::Companion => companion,
            NamespaceOrder::Reversed => {
                let mut reversed = companion;
                reversed.reverse();
                reversed
            }
        }
    }
}

/// Registers the namespaces with the node manager that owns them, in order, without nodes: the
/// simulator builds its instance nodes itself and does not load the companion nodesets.
pub struct NamespaceRegistration(pub NamespaceOrder);

impl NodeSetImport for NamespaceRegistration {
    fn register_namespaces(&self, namespaces: &mut NodeSetNamespaceMapper<'_>) {
        for (offset, uri) in self.0.uris().into_iter().enumerate() {
            namespaces.add_namespace(uri, offset as u16 + 1);
        }
    }

    fn get_own_namespaces(&self) -> Vec<String> {
        self.0.uris().into_iter().map(str::to_string).collect()
    }

    fn load<'a>(
        &'a self,
        _namespaces: &'a NodeSetNamespaceMapper<'_>,
    ) -> Box<dyn Iterator<Item = ImportedItem> + 'a> {
        Box::new(std::iter::empty())
    }
}

/// The indexes the server gave each namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceIndexes {
    pub di: u16,
    pub machinery: u16,
    pub ia: u16,
    pub machine_tool: u16,
    pub instance: u16,
}

impl NamespaceIndexes {
    pub fn resolve(index_of: impl Fn(&str) -> Option<u16>) -> Result<NamespaceIndexes, String> {
        let index = |uri: &str| index_of(uri).ok_or_else(|| format!("namespace {uri} missing"));
        Ok(NamespaceIndexes {
            di: index(DI_URI)?,
            machinery: index(MACHINERY_URI)?,
            ia: index(IA_URI)?,
            machine_tool: index(MACHINE_TOOL_URI)?,
            instance: index(INSTANCE_URI)?,
        })
    }
}
