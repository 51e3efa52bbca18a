//! OCI distribution client.

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Other(String),
}
