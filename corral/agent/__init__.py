"""The agent: runs tasks on one node, supervises them and reports to the master."""
