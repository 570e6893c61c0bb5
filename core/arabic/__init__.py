"""Arabic for prompts: numbers with counted nouns and digits (``numbers``),
days and clock times (``clock``), each as prompt fragments said in order."""
