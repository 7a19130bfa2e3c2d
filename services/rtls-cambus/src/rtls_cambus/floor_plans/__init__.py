"""Floor plans: the image of a floor, its scale and origin."""
