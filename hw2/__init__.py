"""CS236781 homework 2: backpropagation, optimization, MLPs, CNNs and experiments."""
