"""NetworkOutput -> pose -> ARKit weights: post-processing, face parameters, quiet hold, blinks, the solve."""
