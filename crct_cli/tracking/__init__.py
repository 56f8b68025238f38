"""Detection and tracking: MTCNN wrapper and Algorithm 1 of CRCT."""
