"""The KFP TaskService API: .proto sources and their generated code (never edited by hand)."""
