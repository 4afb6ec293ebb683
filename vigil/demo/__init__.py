"""Demo material: a seeded generator of platform traffic with attacks mixed in, and the texts it uses."""
