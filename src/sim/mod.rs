//! A ground-truth V1 simulator that writes datasets in the FileTree layout.
