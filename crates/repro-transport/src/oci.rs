//! `oci:DIR[:ref]` image layouts.
