"""Fine-tuning: the Hugging Face Trainer on a task (paper and quick presets, masks held off for re-fine-tuning).

Uses the tasks, batches and evaluation of :mod:`attnpatterns.tasks` and the model identity of
:mod:`attnpatterns.models.identity`, as pruning does; neither of the two imports the other.
"""
