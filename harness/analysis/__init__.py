"""The analysis side: reads result records, builds the report and the gate verdicts.

Runs in one modern environment with pandas, matplotlib and scipy; never imports torch.
"""
