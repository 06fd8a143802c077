"""Retraining: jobs, gate, promotion (target home of service/jobs.py, gate.py, promotion.py)."""
