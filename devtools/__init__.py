"""Tools for developing the service, not shipped in the wheel or the image: an embedded Redis,
local worker processes, the demo, the benchmarks and the settings reference generator."""
