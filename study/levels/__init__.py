"""A study's two levels on Ray Tune + Optuna: the life cycle (run, resume, extend), the references, the
Tuner wiring, the searcher, the schedulers (live FIFO, MOASHA) and the console callback."""
