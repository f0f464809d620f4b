"""Figures of a run: matplotlib helpers and the writer of figures and arrays (`plots`), sample and reconstruction
outputs (`report`) and class-by-class grids (`class_grid`)."""
