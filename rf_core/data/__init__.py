"""Tasks from datasets: task records, the schema context of a prompt, Spider hardness."""
