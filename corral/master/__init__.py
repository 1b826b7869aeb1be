"""The master: keeps desired and actual state, runs the scheduling loop, talks to agents."""
