//! `rootfs:FILE` bare rootfs tarballs as one-layer images.
