"""RQ entry points: queues and the job decorator (queues.py), jobs, the worker and the scheduler."""
