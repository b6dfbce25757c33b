"""LightningModules (one per loop shape) and the callbacks shared by every stage."""
