"""One probe per operation family. A probe uses a client adapter, measures, checks the bytes, and returns
an Observation with evidence. It never decides pass or fail: expectations do (conformance.expectations)."""
