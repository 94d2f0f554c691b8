"""The models room: the direct model and IML-GCN, the label graph and node features, sizes, the saved-model
folder. Built from a TrialConfig; no training here."""
