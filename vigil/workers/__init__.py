"""Broker workers: thin loops that feed events from Redis Streams or Kafka to one Engine each."""
