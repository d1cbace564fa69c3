"""The harness tests, benchmarks and scripts share: sandboxed deployments driven by the real
`dagster-daemon`, analyst reader processes, and the helpers that stop and inspect them."""
