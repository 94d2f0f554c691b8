"""The training machinery every stage shares: losses, metrics, the epoch loop, evaluation over a split, the
Runtime (rank, devices, collectives) and the two splits a run reads (with the driver's split index)."""
