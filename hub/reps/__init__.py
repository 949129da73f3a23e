"""Sales reps: who takes calls and owns leads (teams, capacity and routing rules come with routing)."""
