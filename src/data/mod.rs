//! Datasets: the Kaggle class-folder layout, the FER2013 CSV, synthetic faces, and the decode cache.
