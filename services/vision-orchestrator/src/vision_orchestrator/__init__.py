"""vision-orchestrator: Registers vision machines, queues and distributes inspections, takes heartbeats and results."""
