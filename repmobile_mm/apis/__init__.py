"""What the tools do, as functions a program calls (the tools only parse and print)."""
