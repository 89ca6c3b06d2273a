"""riemexp's Hydra sweeper (hydra/sweeper=riemexp): launches exactly the jobs a riemexp sweep planned."""
