"""motwatch: watches customer journeys live and raises the alarm when a moment of truth fails.

The layers and what each may import: README, section Layout.
"""
