"""Metrics of trained models, one module per family.

    disentanglement   MIG, beta-VAE, FactorVAE, DCI and SAP scores against data with known generative factors:
                      report = disentanglement_report(model, vaekit.load_data("shapes-32"))
    factors           factor sources (sample factors, render observations) and representations for them
"""

from .disentanglement import (
    DisentanglementReport, MetricResult, MetricSettings, all_metrics, beta_vae_score, dci, dci_from_importance,
    disentanglement_report, factor_vae_score, mig, mig_from_codes, sap, sap_continuous,
)
from .factors import FactorGrid, encode_samples, factor_source, has_factors, model_representation

__all__ = [
    "DisentanglementReport", "MetricResult", "MetricSettings", "all_metrics", "beta_vae_score", "dci",
    "dci_from_importance", "disentanglement_report", "factor_vae_score", "mig", "mig_from_codes", "sap",
    "sap_continuous", "FactorGrid", "encode_samples", "factor_source", "has_factors", "model_representation",
]
