"""Fine-tuning: the Hugging Face Trainer on a task (paper and quick presets, masks held off for re-fine-tuning).

Uses the tasks, batches, evaluation and run-folder names of :mod:`attnpatterns.pruning`; pruning does not import it.
"""
