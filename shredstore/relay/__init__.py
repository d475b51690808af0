"""The broker relay: events leave the store for RabbitMQ or NATS JetStream, still sealed."""
