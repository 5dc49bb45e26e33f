"""attnpatterns: self-attention patterns of BERT-family models and how pruning changes them.

The package reproduces and extends the analysis of Prasanna, Rogers & Rumshisky (2020), "When BERT Plays the
Lottery, All Tickets Are Winning": prune a fine-tuned encoder (``attnpatterns.pruning``), extract raw and
norm-weighted attention maps (``attnpatterns.extraction``), label them with a pattern classifier
(``attnpatterns.patterns``), and compare the pattern distributions of super-survivor heads with the full model
(``attnpatterns.analysis``). Importing the package only defines names; nothing is loaded or downloaded.
"""

__version__ = "0.1.0"
