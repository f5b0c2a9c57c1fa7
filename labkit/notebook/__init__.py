"""What the notebooks show: figures, the torchinfo table, the answers' sentences read off a run, the attention
explorer, and the lab benchmark's summary that Question 7 quotes."""
