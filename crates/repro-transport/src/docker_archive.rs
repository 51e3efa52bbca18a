//! `docker-archive:FILE[:ref]` (docker save tarballs).
