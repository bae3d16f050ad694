//! Test support shared by unit tests, integration tests and benchmarks: the in-process
//! OpenStack fake and fixture builders. Compiled only for tests (feature `testing`).

#[cfg(test)]
pub mod fake_kube;
pub mod fake_openstack;
pub mod fixtures;
