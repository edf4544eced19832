"""The KFP TaskService API: .proto sources and their generated Python code (never edited by hand)."""
