"""How each bundled weights file is made: one registered recipe per ``petlbench pretrain --data NAME``
(``base.Recipe``; ``base.RECIPES`` lists them, ``base.pretrain`` runs one). Adding a recipe is one module here with
``@register`` plus its test."""
