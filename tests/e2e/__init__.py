"""The e2e bed: real agents on several nodes behind haproxy, in the kernel lab (docs/e2e.md)."""
