"""The small set of SNOMED CT concepts the synthetic A&E extract uses.

All are SNOMED CT International concept IDs (term given alongside). The
alcohol involvement and alcohol-specific diagnosis codes are NOT here: they
are read from ``pipelines/definitions/codelists/alcohol_ae.csv``.
"""

from __future__ import annotations

import numpy as np

# ------------------------------------------------------------ chief complaint
# (code, term)
COMPLAINTS = (
    ("29857009", "Chest pain"),
    ("21522001", "Abdominal pain"),
    ("267036007", "Dyspnea"),
    ("25064002", "Headache"),
    ("386661006", "Fever"),
    ("422400008", "Vomiting"),
    ("271594007", "Syncope"),
    ("1912002", "Fall"),
    ("417746004", "Traumatic injury"),
    ("3006004", "Disturbance of consciousness"),
    ("22253000", "Pain"),
    ("75478009", "Poisoning"),
)
C = {term: i for i, (_, term) in enumerate(COMPLAINTS)}

# complaint mix (relative weights) by age group: child <16, adult 16-64, older 65+
COMPLAINT_WEIGHTS = np.array(
    [
        # chest abdo dysp head fever vomit sync fall injury consc pain poison
        [1, 6, 14, 3, 22, 10, 1, 8, 27, 2, 5, 1],  # child
        [12, 14, 7, 6, 3, 4, 3, 5, 26, 3, 14, 3],  # adult
        [14, 9, 14, 2, 3, 3, 7, 25, 9, 5, 8, 1],  # older
    ],
    dtype=float,
)

# ---------------------------------------------------------- primary diagnosis
DIAGNOSES = (
    ("233604007", "Pneumonia"),
    ("68566005", "Urinary tract infectious disease"),
    ("195967001", "Asthma"),
    ("22298006", "Myocardial infarction"),
    ("125605004", "Fracture of bone"),
    ("125667009", "Contusion"),
    ("44465007", "Sprain of ankle"),
    ("54150009", "Upper respiratory infection"),
    ("37796009", "Migraine"),
    ("13645005", "Chronic obstructive lung disease"),
    ("49436004", "Atrial fibrillation"),
    ("14760008", "Constipation"),
    ("62315008", "Diarrhea"),
    ("84757009", "Epilepsy"),
    ("91302008", "Sepsis"),
    ("82271004", "Injury of head"),
    ("29857009", "Chest pain"),  # symptom recorded as the diagnosis when nothing more is found
    ("21522001", "Abdominal pain"),
)
D = {term: i for i, (_, term) in enumerate(DIAGNOSES)}


def _diagnosis_matrix() -> np.ndarray:
    m = np.zeros((len(COMPLAINTS), len(DIAGNOSES)))

    def put(complaint: str, **weights: float) -> None:
        for term, w in weights.items():
            m[C[complaint], D[term.replace("_", " ")]] = w

    put("Chest pain", Chest_pain=55, Myocardial_infarction=15, Atrial_fibrillation=10, Pneumonia=8,
        Chronic_obstructive_lung_disease=4, Sepsis=2)
    put("Abdominal pain", Abdominal_pain=60, Constipation=12, Urinary_tract_infectious_disease=14, Diarrhea=10,
        Sepsis=2)
    put("Dyspnea", Pneumonia=25, Asthma=20, Chronic_obstructive_lung_disease=18, Upper_respiratory_infection=20,
        Atrial_fibrillation=8, Sepsis=4)
    put("Headache", Migraine=55, Injury_of_head=10, Upper_respiratory_infection=20, Sepsis=2)
    put("Fever", Upper_respiratory_infection=45, Urinary_tract_infectious_disease=20, Pneumonia=15, Sepsis=10)
    put("Vomiting", Diarrhea=45, Upper_respiratory_infection=15, Abdominal_pain=20, Urinary_tract_infectious_disease=8)
    put("Syncope", Atrial_fibrillation=30, Epilepsy=15, Chest_pain=20, Injury_of_head=10)
    put("Fall", Fracture_of_bone=35, Contusion=35, Injury_of_head=20, Sprain_of_ankle=10)
    put("Traumatic injury", Fracture_of_bone=25, Contusion=35, Sprain_of_ankle=25, Injury_of_head=15)
    put("Disturbance of consciousness", Epilepsy=40, Sepsis=25, Injury_of_head=20, Atrial_fibrillation=5)
    put("Pain", Contusion=25, Sprain_of_ankle=20, Abdominal_pain=20, Migraine=10, Chest_pain=10, Fracture_of_bone=10)
    # poisoning without alcohol: no specific code in this small set; record the presenting symptom
    m[C["Poisoning"], D["Abdominal pain"]] = 30
    m[C["Poisoning"], D["Diarrhea"]] = 30
    m[C["Poisoning"], D["Epilepsy"]] = 5
    m[C["Poisoning"], D["Chest pain"]] = 10
    return m / m.sum(axis=1, keepdims=True)


DIAGNOSIS_GIVEN_COMPLAINT = _diagnosis_matrix()

# chief complaints of alcohol-related attendances: injury, fall, reduced consciousness, poisoning
ALCOHOL_COMPLAINT_WEIGHTS = np.array([1, 3, 1, 2, 0, 6, 3, 20, 30, 18, 2, 14], dtype=float)
# diagnoses when the alcohol-related attendance is coded by involvement only (an injury)
ALCOHOL_INJURY_DIAGNOSES = np.array([D["Injury of head"], D["Contusion"], D["Fracture of bone"], D["Sprain of ankle"]])
ALCOHOL_INJURY_WEIGHTS = np.array([35, 40, 15, 10], dtype=float)

# ------------------------------------------------------- discharge destination
DISCHARGES = (
    ("306689006", "Discharge to home"),
    ("306706006", "Discharge to ward"),
    ("19712007", "Patient transfer, to another health care facility"),
    ("306705005", "Discharge to police custody"),
)
# by age group (child, adult, older) and for alcohol-related attendances
DISCHARGE_WEIGHTS = np.array(
    [
        [86, 12, 2, 0.0],
        [74, 21, 3, 0.6],
        [52, 43, 5, 0.1],
    ]
)
ALCOHOL_DISCHARGE_WEIGHTS = np.array([72, 18, 2, 8], dtype=float)


def codes(table) -> np.ndarray:
    return np.array([c for c, _ in table])
