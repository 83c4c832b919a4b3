"""What runs in a worker node's consumer (main) process: the Redis transport, the batching
strategy and its statistics. It never imports torch: the pool processes do (worker.pool)."""
