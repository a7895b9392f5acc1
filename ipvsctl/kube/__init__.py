"""Kubernetes edge: raw JSON/YAML objects → typed views; manifest loading."""
